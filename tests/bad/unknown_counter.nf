// EXPECT: 6:15: error: unknown counter 'dropped'
// count() names a counter that is not declared in this nf.
nf acl {
    counter drops;
    action deny() {
        count(dropped);
        drop();
    }
    apply { deny(); }
}
