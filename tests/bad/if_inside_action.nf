// EXPECT: 5:9: error: conditionals belong in the apply block, not in an action
// Actions are straight-line code; conditionals belong in the apply block.
nf ttl_check {
    action check_ttl() {
        if (ipv4.ttl <= 1) {
            drop();
        }
    }
    apply { check_ttl(); }
}
