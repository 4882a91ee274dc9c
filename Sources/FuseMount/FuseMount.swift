// FuseMount
