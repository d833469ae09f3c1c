// Test only (tests/thunderbird/run, autoconfig run): the user gives an address and a
// name, nothing else; Thunderbird's own account-setup code finds the rest (the
// experiment prints the account created on one line for the run to check).
const EMAIL = "jean.dupont@sandbox.mssante.fr";
const NAME = "Dr Jean Dupont";

async function setUpOnce() {
  const { done } = await browser.storage.local.get("done");
  if (done) {
    return;
  }
  await browser.storage.local.set({ done: true });
  await browser.accountSetup.fromAddress(EMAIL, NAME);
}

setUpOnce().catch(() => {});
