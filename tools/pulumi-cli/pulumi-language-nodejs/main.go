// Command pulumi-language-nodejs is kvmtune's small stand-in for Pulumi's
// Node.js language host.
//
// Why this exists: the Pulumi engine runs a `runtime: nodejs` program through
// a separate plugin binary, `pulumi-language-nodejs`. Upstream ships it as its
// own Go module (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3,
// untagged, pseudo-versions only), and the Go module proxy that our machines
// and CI can reach refuses that module path outright (403 "not available" for
// its version list, for @latest and for every pseudo-version tried). No
// prebuilt binary can be downloaded either. So we build this one from the
// Pulumi SDK packages we *can* fetch (sdk/v3 at the same tag as the CLI).
//
// What it does: the same thing the upstream host does for a plain Node.js
// program, minus the extras. The engine starts it with the engine's gRPC
// address as the last argument; it serves pulumirpc.LanguageRuntime on a free
// port and prints that port on stdout. On Run it locates
// @pulumi/pulumi/cmd/run from the program directory (so the program's own
// @pulumi/pulumi is used) and execs `node [nodeargs] <run> --monitor ...
// <entry point>`, passing config through PULUMI_CONFIG like upstream.
//
// What it leaves out (the engine treats these as "not implemented" and falls
// back, or they are not needed by kvmtune): plugin discovery from
// node_modules (GetRequiredPackages returns nothing; with automatic plugin
// acquisition disabled the engine finds pulumi-resource-pulumi-nodejs on
// PATH when a dynamic resource appears), the synchronous-invoke pipes and
// monitor proxy, debugger attach, code generation, policy packs (RunPlugin),
// Pack/Link, and InstallDependencies beyond `npm install`.
//
// If you have a real Pulumi install, point KVMTUNE_PULUMI_BIN at its bin
// folder and this binary is not used at all.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/shlex"
	"google.golang.org/grpc"
	pbempty "google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Exit code with which @pulumi/pulumi's run script says "I already showed the
// user an actionable message": the engine should bail without adding more.
const exitAfterActionableMessage = 32

func main() {
	// Every flag the engine (sdk/v3 go/common/resource/plugin: buildPluginArguments) or an
	// upstream-style caller may pass. Under `pulumi --logflow` the engine adds --logtostderr and
	// -v=N: those two are glog's own flags, registered on flag.CommandLine by the logging
	// package's glog import, and honoured through logging.InitLogging below. The rest are
	// upstream pulumi-language-nodejs's flags, accepted so no caller can make us exit with
	// "flag provided but not defined".
	showVersion := flag.Bool("version", false, "print the plugin version and exit")
	flag.String("tracing", "", "emit tracing to a Zipkin-compatible endpoint (accepted; this host sends no traces)")
	flag.String("root", "", "the project root (accepted; Run gets it from the engine)")
	flag.String("binary", "", "[obsolete upstream] accepted and ignored")
	flag.Bool("typescript", true, "[obsolete upstream] accepted and ignored: runtime.options.typescript decides")
	nodeargs := flag.String("nodeargs", "", "arguments for the Node process, before runtime.options.nodeargs")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	// Reads -v and --logtostderr as parsed above, like every Pulumi plugin.
	logging.InitLogging(false, 0, false)
	logging.V(3).Infof("pulumi-language-nodejs %s (kvmtune stand-in) args %q", version.Version, os.Args[1:])

	host := &nodeHost{nodeargs: *nodeargs}
	if args := flag.Args(); len(args) > 0 {
		host.engineAddress = args[len(args)-1]
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	host.cancelCtx, host.cancelFunc = context.WithCancel(ctx)
	cancel := make(chan bool)
	go func() { <-ctx.Done(); close(cancel) }()

	// Exit when the engine goes away, like every Pulumi plugin does.
	if host.engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, host.engineAddress, 5*time.Minute, stop); err != nil {
			fatal(fmt.Errorf("could not start health check: %w", err))
		}
	}

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fatal(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	// The engine reads the port from our first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fatal(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: %v\n", err)
	os.Exit(1)
}

type nodeHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	nodeargs      string          // the -nodeargs flag
	cancelCtx     context.Context // cancelled by the Cancel RPC or SIGINT
	cancelFunc    context.CancelFunc
}

func (h *nodeHost) Handshake(_ context.Context,
	req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *nodeHost) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// GetRequiredPlugins/GetRequiredPackages: we report none. Upstream scans
// node_modules for packages that ship a resource plugin; kvmtune only uses
// dynamic providers, whose plugin (pulumi-resource-pulumi-nodejs) the engine
// loads from PATH on demand.
func (h *nodeHost) GetRequiredPlugins(context.Context,
	*pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *nodeHost) GetRequiredPackages(context.Context,
	*pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *nodeHost) GetProgramDependencies(context.Context,
	*pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *nodeHost) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	resp := &pulumirpc.AboutResponse{Executable: "node", Metadata: map[string]string{"host": "kvmtune stand-in"}}
	if out, err := exec.CommandContext(ctx, "node", "--version").Output(); err == nil {
		resp.Version = strings.TrimSpace(string(out))
	}
	return resp, nil
}

func (h *nodeHost) Cancel(context.Context, *pbempty.Empty) (*pbempty.Empty, error) {
	h.cancelFunc()
	return &pbempty.Empty{}, nil
}

// InstallDependencies runs `npm install` in the program directory (used by
// `pulumi install`; `up`/`preview` never call it).
func (h *nodeHost) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	srv grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	dir := req.GetInfo().GetProgramDirectory()
	if _, err := os.Stat(dir + "/package.json"); err != nil {
		return nil
	}
	cmd := exec.CommandContext(srv.Context(), "npm", "install")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if sendErr := srv.Send(&pulumirpc.InstallDependenciesResponse{Stdout: out}); sendErr != nil && err == nil {
		err = sendErr
	}
	return err
}

type nodeOptions struct {
	typescript bool
	tsconfig   string
	nodeargs   string
}

// parseOptions reads `runtime.options` of Pulumi.yaml (same keys and defaults
// as upstream: typescript defaults to true, i.e. ts-node is used when the
// entry point is TypeScript).
func parseOptions(opts map[string]any) (nodeOptions, error) {
	o := nodeOptions{typescript: true}
	if v, ok := opts["typescript"]; ok {
		b, ok := v.(bool)
		if !ok {
			return o, errors.New("typescript option must be a boolean")
		}
		o.typescript = b
	}
	if v, ok := opts["tsconfig"]; ok {
		s, ok := v.(string)
		if !ok {
			return o, errors.New("tsconfig option must be a string")
		}
		o.tsconfig = s
	}
	if v, ok := opts["nodeargs"]; ok {
		s, ok := v.(string)
		if !ok {
			return o, errors.New("nodeargs option must be a string")
		}
		o.nodeargs = s
	}
	return o, nil
}

// locateRunScript resolves @pulumi/pulumi/cmd/run the way Node would from the
// program directory, so the program's own SDK version runs it.
func locateRunScript(ctx context.Context, nodeBin, programDir string) (string, error) {
	mod := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH")
	if mod == "" {
		mod = "@pulumi/pulumi/cmd/run"
	}
	script := fmt.Sprintf(`try { console.log(require.resolve(%q)); } catch (e) { `+
		`console.error(e.code === "MODULE_NOT_FOUND" ? "It looks like the Pulumi SDK has not been installed. `+
		`Have you run npm install?" : e.message); process.exit(1); }`, mod)
	cmd := exec.CommandContext(ctx, nodeBin, "-e", script)
	cmd.Dir = programDir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", errors.New(strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func (h *nodeHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "could not find node on the $PATH: " + err.Error()}, nil
	}
	opts, err := parseOptions(info.GetOptions().AsMap())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	runPath, err := locateRunScript(ctx, nodeBin, info.GetProgramDirectory())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	// The run script's flags, as upstream passes them. Without --sync the SDK
	// talks to the monitor directly (no synchronous-invoke pipes).
	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()
	args, err := shlex.Split(strings.TrimSpace(h.nodeargs + " " + opts.nodeargs))
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	args = append(args, runPath)
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", engine)
	add("organization", req.GetOrganization())
	add("project", req.GetProject())
	add("root-directory", info.GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", info.GetProgramDirectory())
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	// Config goes in as JSON in PULUMI_CONFIG, keys in the old
	// "<namespace>:config:<name>" form that every @pulumi/pulumi accepts.
	cfg := make(map[string]string, len(req.GetConfig()))
	for k, v := range req.GetConfig() {
		key, err := config.ParseKey(k)
		if err != nil {
			return &pulumirpc.RunResponse{Error: err.Error()}, nil
		}
		cfg[key.Namespace()+":config:"+key.Name()] = v
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	env := append(os.Environ(),
		"PULUMI_CONFIG="+string(cfgJSON),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretJSON))
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}

	// Stop node (SIGINT, then kill after 5 s) if the request ends or the
	// engine asks us to cancel.
	cmdCtx, cmdCancel := context.WithCancel(h.cancelCtx)
	defer cmdCancel()
	context.AfterFunc(ctx, cmdCancel)
	cmd := exec.CommandContext(cmdCtx, nodeBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = info.GetProgramDirectory()
	cmd.Env = env
	// Node may switch its stdio to non-blocking mode, so never hand it our
	// own *os.File directly: wrapping makes exec copy through a pipe.
	cmd.Stdout = struct{ io.Writer }{os.Stdout}
	cmd.Stderr = struct{ io.Writer }{os.Stderr}

	logging.V(5).Infof("running %s %q in %s", nodeBin, args, cmd.Dir)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
			}, nil
		}
		if ee.ExitCode() == exitAfterActionableMessage {
			return &pulumirpc.RunResponse{Bail: true}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Program exited with non-zero exit code: %d", ee.ExitCode()),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}
