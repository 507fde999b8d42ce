// EXPECT: 6:13: error: unknown metadata field 'meta.egress_port'
// meta has ingress_port, l4_src and l4_dst; 'egress_port' is not a field.
nf out {
    action send() { forward(1); }
    apply {
        if (meta.egress_port == 1) {
            send();
        }
    }
}
