// EXPECT: 8:5: error: coalesce 'gro' can only run in a vm_ingress pipeline
// Receive coalescing only runs on traffic toward the VM.
coalesce gro {
    max_size = 65535;
}

pipeline tx : vm_egress {
    gro;
}
