// EXPECT: 8:8: error: header type 'mytag' is already defined
// The same header type is declared twice.
header mytag {
    tenant: bit<16>;
    ether_type: bit<16>;
}

header mytag {
    tenant: bit<24>;
    ether_type: bit<16>;
}
