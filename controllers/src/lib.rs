//! The embedded SpinApp controller and the core controllers it needs
//! (what spin-operator, kube-controller-manager and the scheduler do for Spin apps).
//!
//! Every controller talks to the API only through the `kube` client, never through the store.
//! Nothing is implemented yet: the controllers arrive with their issue.
