// Command libcni-driver runs a CNI network configuration list through Debian's libcni
// (the library containerd and CRI-O use), so plexus is exercised by a real third-party
// runtime client rather than by its own code.
//
// Usage:
//
//	libcni-driver add|check|del|validate CONFLIST CONTAINER_ID NETNS IFNAME CACHE_DIR
//
// Plugins are found through CNI_PATH (colon separated). ADD prints the result JSON on
// stdout; every error is printed on stderr and exits with status 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "libcni-driver: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 7 {
		fail("usage: %s add|check|del|validate CONFLIST CONTAINER_ID NETNS IFNAME CACHE_DIR", filepath.Base(os.Args[0]))
	}
	verb, confPath, containerID, netns, ifname, cacheDir := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	list, err := libcni.ConfListFromFile(confPath)
	if err != nil {
		fail("loading %s: %v", confPath, err)
	}
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))
	cni := libcni.NewCNIConfigWithCacheDir(paths, cacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       netns,
		IfName:      ifname,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", "interop"},
			{"K8S_POD_NAME", "pod-" + containerID},
		},
	}
	if extra := os.Getenv("LIBCNI_DRIVER_ARGS"); extra != "" {
		for _, kv := range strings.Split(extra, ";") {
			parts := strings.SplitN(kv, "=", 2)
			if len(parts) == 2 {
				rt.Args = append(rt.Args, [2]string{parts[0], parts[1]})
			}
		}
	}
	ctx := context.Background()
	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("ADD: %v", err)
		}
		out, err := json.Marshal(result)
		if err != nil {
			fail("encoding result: %v", err)
		}
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("CHECK: %v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("DEL: %v", err)
		}
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			fail("VALIDATE: %v", err)
		}
		fmt.Println(strings.Join(caps, ","))
	default:
		fail("unknown verb %q", verb)
	}
}
