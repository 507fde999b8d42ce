// EXPECT: 3:8: error: unclosed '{': its '}' is missing
// The nf's closing brace is missing.
nf acl {
    action allow() { }
    apply {
        allow();
    }
