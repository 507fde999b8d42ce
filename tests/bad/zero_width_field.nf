// EXPECT: 5:5: error: field 'mytag.pad' has width bit<0>; widths must be 1 to 2048
// bit<0> is not a width.
header mytag {
    tenant: bit<16>;
    pad: bit<0>;
    ether_type: bit<16>;
}
