// EXPECT: 6:5: error: field 'tenant' is already defined in header 'mytag'
// A header has two fields of the same name.
header mytag {
    tenant: bit<16>;
    flags: bit<8>;
    tenant: bit<8>;
}
