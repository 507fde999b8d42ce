// EXPECT: 3:8: error: header 'mytag' is 20 bits long; headers must be a whole number of bytes
// 16 + 4 = 20 bits: headers must be whole bytes.
header mytag {
    tenant: bit<16>;
    qos_class: bit<4>;
}
