// EXPECT: 17:11: error: parser state 'mytag' is already defined
// A user parser declares the same state twice.
header mytag {
    tenant: bit<16>;
    ether_type: bit<16>;
}

packet {
    mytag: mytag;
}

parser {
    state mytag {
        extract(mytag);
        transition accept;
    }
    state mytag {
        extract(mytag);
        transition ipv4;
    }
}
