"""The platform's published vocabulary: data that producers and consumers of the APIs agree
on (the indicator catalogue, stages, profile attributes, tag values). No behaviour lives here;
services still talk only over HTTP, this is the shared schema of what they say."""
