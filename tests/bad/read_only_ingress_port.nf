// EXPECT: 5:9: error: 'meta.ingress_port' is read-only
// meta.ingress_port is set by the target and cannot be assigned.
nf spoof {
    action set_port() {
        meta.ingress_port = 3;
    }
    apply { set_port(); }
}
