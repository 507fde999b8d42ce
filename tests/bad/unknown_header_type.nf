// EXPECT: 9:10: error: unknown header type 'my_tag'
// A packet instance of a header type that is not declared.
header mytag {
    tenant: bit<16>;
    ether_type: bit<16>;
}

packet {
    tag: my_tag;
}
