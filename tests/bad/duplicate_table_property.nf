// EXPECT: 10:9: error: property 'size' is given twice in table 'acl_v4'
// A table property given twice.
nf acl {
    action allow() { }
    table acl_v4 {
        key = { ipv4.dst: exact; }
        actions = { allow; }
        default_action = allow();
        size = 256;
        size = 512;
    }
    apply { acl_v4.apply(); }
}
