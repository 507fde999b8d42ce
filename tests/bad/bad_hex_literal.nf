// EXPECT: 3:14: error: bad number '0x_'
// "0x_" lexes as a hex number but has no digits.
const MASK = 0x_;

// The rest of the file is valid.
const UPLINK0 = 0;
