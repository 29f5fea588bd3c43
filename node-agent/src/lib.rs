//! The kubelet-compatible node agent: registers the node and runs the pods bound to it
//! as Spin apps in wasmtime sandboxes. It talks to the API only through the `kube` client.
//! Nothing is implemented yet: the agent arrives with its issue.
