// EXPECT: 3:24: error: bad IPv4 address '300.1.1.1'
// 300 is not an IPv4 address byte.
const REMOTE_VTEP_IP = 300.1.1.1;

// The rest of the file is valid.
const UPLINK0 = 0;
