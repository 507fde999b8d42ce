// EXPECT: 9:5: error: segment 'tso' can only run in a vm_egress pipeline
// Segmentation only runs on traffic leaving the VM.
segment tso {
    mss = auto;
    underlay_mtu = 1500;
}

pipeline rx : vm_ingress {
    tso;
}
