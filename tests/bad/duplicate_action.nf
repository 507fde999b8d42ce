// EXPECT: 6:12: error: 'allow' is already defined in nf 'acl'
// An nf declares the same action twice.
nf acl {
    action allow() { }
    action deny() { drop(); }
    action allow() { forward(1); }
    apply { deny(); }
}
