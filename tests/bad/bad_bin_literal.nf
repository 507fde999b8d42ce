// EXPECT: 3:15: error: bad number '0b__'
// "0b_" lexes as a binary number but has no digits.
const FLAGS = 0b__;

// The rest of the file is valid.
const UPLINK0 = 0;
