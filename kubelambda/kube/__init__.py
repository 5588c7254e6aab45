"""The Kubernetes layer the operator and the cluster gateway share: the API client, the watch view,
the pod/label contract between them, code facts and ConfigMap code, and the catalog built from
watched objects."""
