// EXPECT: 7:6: error: unexpected end of file; expected '}'
// The nf's closing brace is missing.
nf acl {
    action allow() { }
    apply {
        allow();
    }
