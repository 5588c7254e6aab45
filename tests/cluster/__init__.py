"""An emulated Kubernetes cluster for tests: a faithful apiserver over kmock, and a test kubelet.

See README.md in this folder for what is emulated and what is not.
"""
