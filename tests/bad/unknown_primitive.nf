// EXPECT: 5:9: error: unknown primitive or action 'set_ttl'
// An action calls a primitive that does not exist.
nf nat {
    action rewrite() {
        set_ttl(64);
    }
    apply { rewrite(); }
}
