// Command cel-eval evaluates CEL expressions the way hyperfleet-adapter v0.1 and
// v0.2 evaluate its payload expressions: cel-go with optional types enabled, one
// variable per top-level key of the activation (typed from its JSON value), the
// expression parsed but not type-checked, and an evaluation error kept as a result
// (the adapter then uses the field's default) rather than treated as fatal.
//
// stdin:  {"expressions": {"name": "cel", ...}, "activations": [{...}, ...]}
// stdout: [{"name": {"value": <json>} | {"error": "..."}, ...}, ...]  one per activation
//
// A parse error is a bug in the configuration, as in the adapter: exit 1 and the
// message on stderr.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/google/cel-go/cel"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

type request struct {
	Expressions map[string]string `json:"expressions"`
	Activations []map[string]any  `json:"activations"`
}

type result struct {
	Value json.RawMessage `json:"value,omitempty"`
	Error string          `json:"error,omitempty"`
}

// normalise turns json.Number into int64 where it is integral (as Kubernetes'
// unstructured objects hold integers) and float64 otherwise.
func normalise(value any) any {
	switch v := value.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for key, item := range v {
			v[key] = normalise(item)
		}
		return v
	case []any:
		for i, item := range v {
			v[i] = normalise(item)
		}
		return v
	default:
		return v
	}
}

// typeOf declares a variable's type from its value, as the adapter does.
func typeOf(value any) *cel.Type {
	switch value.(type) {
	case string:
		return cel.StringType
	case bool:
		return cel.BoolType
	case int64:
		return cel.IntType
	case float64:
		return cel.DoubleType
	case []any:
		return cel.ListType(cel.DynType)
	case map[string]any:
		return cel.MapType(cel.StringType, cel.DynType)
	default:
		return cel.DynType
	}
}

func evaluate(expressions map[string]string, activation map[string]any) (map[string]result, error) {
	options := []cel.EnvOption{cel.OptionalTypes()}
	for name, value := range activation {
		options = append(options, cel.Variable(name, typeOf(value)))
	}
	env, err := cel.NewEnv(options...)
	if err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	results := make(map[string]result, len(expressions))
	for name, text := range expressions {
		ast, issues := env.Parse(strings.TrimSpace(text))
		if issues != nil && issues.Err() != nil {
			return nil, fmt.Errorf("%s: parse: %w", name, issues.Err())
		}
		program, err := env.Program(ast)
		if err != nil {
			return nil, fmt.Errorf("%s: program: %w", name, err)
		}
		out, _, err := program.Eval(activation)
		if err != nil {
			results[name] = result{Error: err.Error()}
			continue
		}
		native, err := out.ConvertToNative(reflect.TypeOf(&structpb.Value{}))
		if err != nil {
			results[name] = result{Error: fmt.Sprintf("result not JSON: %v", err)}
			continue
		}
		encoded, err := protojson.Marshal(native.(*structpb.Value))
		if err != nil {
			results[name] = result{Error: fmt.Sprintf("result not JSON: %v", err)}
			continue
		}
		results[name] = result{Value: encoded}
	}
	return results, nil
}

func run() error {
	decoder := json.NewDecoder(os.Stdin)
	decoder.UseNumber()
	var req request
	if err := decoder.Decode(&req); err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	answers := make([]map[string]result, 0, len(req.Activations))
	for _, activation := range req.Activations {
		for key, value := range activation {
			activation[key] = normalise(value)
		}
		answer, err := evaluate(req.Expressions, activation)
		if err != nil {
			return err
		}
		answers = append(answers, answer)
	}
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(answers); err != nil {
		return err
	}
	_, err := os.Stdout.Write(out.Bytes())
	return err
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cel-eval:", err)
		os.Exit(1)
	}
}
