// EXPECT: 17:10: error: pipeline 'main' is already defined
// Two pipelines with the same name.
nf acl_out {
    action allow() { }
    apply { allow(); }
}

nf acl_in {
    action allow() { }
    apply { allow(); }
}

pipeline main : vm_egress {
    acl_out;
}

pipeline main : vm_ingress {
    acl_in;
}
