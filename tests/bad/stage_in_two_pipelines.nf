// EXPECT: 18:5: error: stage 'acl' is already used in a pipeline
// A stage may be used in one pipeline only.
nf acl {
    action allow() { }
    apply { allow(); }
}

nf counters {
    action nothing() { }
    apply { nothing(); }
}

pipeline tx : vm_egress {
    acl -> counters;
}

pipeline rx : vm_ingress {
    acl;
}
