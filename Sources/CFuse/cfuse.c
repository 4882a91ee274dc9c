int cfuse_placeholder;
