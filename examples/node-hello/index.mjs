export const handler = async (event, context) => {
  console.log("invoked", context.awsRequestId);
  return {
    message: `${process.env.GREETING}, ${event.name ?? "world"}!`,
    remainingMs: context.getRemainingTimeInMillis(),
  };
};
