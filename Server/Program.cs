using TrustLine.Server.Operations;
using TrustLine.Server.Operations.Metrics;
using TrustLine.Server.Organisations;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;

var builder = WebApplication.CreateBuilder(args);

builder.AddCryptoSelfTest();
builder.AddStore();
builder.AddOrganisations();
builder.AddRelay();
builder.AddOperations();

var app = builder.Build();

app.UseManagementListener();
app.UseWebSockets();
app.UseAuthentication();
app.UseAuthorization();
app.MapOperations();
app.MapOrganisations();
app.MapRelay();

app.Run();

/// <summary>The entry point, visible to the integration tests.</summary>
public partial class Program;
