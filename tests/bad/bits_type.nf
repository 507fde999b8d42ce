// EXPECT: 4:9: error: unknown type 'bits'; field and parameter types are written bit<N> (e.g. bit<16>)
// P4 spells it bit<N>.
header mytag {
    id: bits<16>;
}
