{
  "targets": [
    {
      "target_name": "node_kvm",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/system.cc",
        "native/vm.cc",
        "native/vcpu.cc",
        "native/vcpu-thread.cc",
        "native/memory.cc",
        "native/kick.cc",
        "native/layout.cc",
        "native/tap.cc",
        "native/tap-writer.cc",
        "native/snapshot.cc",
        "native/memfd.cc",
        "native/fs.cc",
        "native/eventfd-watch.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["-lpthread"]
    }
  ]
}
