// EXPECT: 14:14: error: unknown pipeline 'egres'
// A flow sends traffic to a pipeline that is not declared.
nf pass {
    action nothing() { }
    apply { nothing(); }
}

pipeline egress : vm_egress {
    pass;
}

flow vm1 {
    match ethernet.src == 02:00:00:00:01:02;
    pipeline egres;
}
