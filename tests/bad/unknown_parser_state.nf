// EXPECT: 16:21: error: unknown parser state 'my_tag'
// A parser state transitions to a state that does not exist.
header mytag {
    tenant: bit<16>;
    ether_type: bit<16>;
}

packet {
    mytag: mytag;
}

parser {
    override state start {
        extract(ethernet);
        transition select(ethernet.ether_type) {
            0x88b5: my_tag;
            0x0800: ipv4;
            default: accept;
        }
    }
    state mytag {
        extract(mytag);
        transition accept;
    }
}
