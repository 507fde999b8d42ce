// EXPECT: 6:17: error: unknown header 'ip'
// A header instance that does not exist.
nf acl {
    action allow() { }
    table acl {
        key = { ip.dst: ternary; }
        actions = { allow; }
        default_action = allow();
    }
    apply { acl.apply(); }
}
