using TrustLine.Server.Operations;
using TrustLine.Server.Storage;

var builder = WebApplication.CreateBuilder(args);

builder.AddCryptoSelfTest();
builder.AddStore();
builder.AddOperations();

var app = builder.Build();

app.MapOperations();

app.Run();

/// <summary>The entry point, visible to the integration tests.</summary>
public partial class Program;
