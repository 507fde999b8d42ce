// EXPECT: 9:12: error: unknown stage 'snat' (not an nf, segment or coalesce)
// A pipeline lists a stage that is neither an nf, a segment nor a coalesce.
nf acl {
    action allow() { }
    apply { allow(); }
}

pipeline egress : vm_egress {
    acl -> snat;
}
