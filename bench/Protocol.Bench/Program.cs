using BenchmarkDotNet.Running;

// Protocol micro-benchmarks: `dotnet run -c Release --project bench/Protocol.Bench -- --filter '*'`.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
