// EXPECT: 5:13: error: 'drops' is already defined in nf 'acl'
// An nf declares the same counter twice.
nf acl {
    counter drops;
    counter drops[16];
    action deny() {
        count(drops);
        drop();
    }
    apply { deny(); }
}
