// EXPECT: 8:4: error: stage 'acl' is already defined
// Two nfs with the same name.
nf acl {
    action allow() { }
    apply { allow(); }
}

nf acl {
    action deny() { drop(); }
    apply { deny(); }
}
