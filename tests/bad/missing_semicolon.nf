// EXPECT: 3:17: error: expected ';' at the end of this line (found 'const' on the next)
// The first constant lacks its semicolon.
const VNI = 5001
const VM_PORT = 2;

// The rest of the file is valid.
const UPLINK0 = 0;
