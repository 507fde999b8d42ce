// EXPECT: 4:11: error: parser state 'start' is already defined (use 'override state' to replace it)
// Redefining a standard parser state needs 'override state'.
parser {
    state start {
        extract(ethernet);
        transition select(ethernet.ether_type) {
            0x0800: ipv4;
            default: accept;
        }
    }
}
