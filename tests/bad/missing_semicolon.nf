// EXPECT: 4:1: error: unexpected 'const'; expected ';'
// The first constant lacks its semicolon.
const VNI = 5001
const VM_PORT = 2;

// The rest of the file is valid.
const UPLINK0 = 0;
