// EXPECT: 4:5: error: field 'big.blob' has width bit<4096>; widths must be 1 to 2048
// Widths are at most bit<2048>.
header big {
    blob: bit<4096>;
}
