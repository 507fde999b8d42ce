// EXPECT: 3:8: error: header type 'ipv4' is already defined
// A header type that the standard library already declares.
header ipv4 {
    src: bit<32>;
    dst: bit<32>;
}
