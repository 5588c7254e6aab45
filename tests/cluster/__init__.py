"""The cluster tests: a real control plane (etcd, kube-apiserver, controller-manager, scheduler
built by `make tools`) with a process kubelet as its node. See README.md in this folder.
"""
