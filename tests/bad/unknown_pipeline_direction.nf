// EXPECT: 8:20: error: unknown direction 'vm_transit'; expected vm_egress or vm_ingress
// Pipelines run vm_egress or vm_ingress; 'vm_transit' is neither.
nf pass {
    action nothing() { }
    apply { nothing(); }
}

pipeline transit : vm_transit {
    pass;
}
