// EXPECT: 4:12: error: action 'drop' has the name of a primitive
// An action may not take the name of a primitive.
nf out {
    action drop() { forward(0); }
    apply { drop(); }
}
