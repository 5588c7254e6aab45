"""`kubelambda deploy` and `kubelambda publish`: ship a folder of manifests and code to a
cluster (through the code store) or to a gateway (through the Lambda control API)."""
