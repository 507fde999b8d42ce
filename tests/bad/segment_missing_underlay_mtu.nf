// EXPECT: 3:9: error: segment 'tso' needs underlay_mtu
// A segment needs the underlay MTU to compute the MSS.
segment tso {
    mss = auto;
    max_mss = 1460;
}

pipeline egress : vm_egress {
    tso;
}
