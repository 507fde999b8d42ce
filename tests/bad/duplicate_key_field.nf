// EXPECT: 8:13: error: field 'ipv4.dst' is a key of table 'acl_v4' twice
// The same field is a key of the table twice.
nf acl {
    action allow() { }
    table acl_v4 {
        key = {
            ipv4.dst: exact;
            ipv4.dst: ternary;
        }
        actions = { allow; }
        default_action = allow();
    }
    apply { acl_v4.apply(); }
}
