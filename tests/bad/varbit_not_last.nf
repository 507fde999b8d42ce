// EXPECT: 5:5: error: varbit field 'data' must be the last field of header 'opts'
// A varbit field must be the last field of its header.
header opts {
    len: bit<8>;
    data: varbit<256> length = len * 8;
    next_proto: bit<8>;
}
