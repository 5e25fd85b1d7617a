"""The inference engine: cameras, backends, pre/post-processing and the real-time pipeline. Runs alone in
`edgefleet agent infer`; never imports the fleet half."""
