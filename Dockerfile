# The guard worker. Secrets are not baked in: they come from the environment at run time (docker compose env_file).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts=false && npm install --no-save tsx@4.20.6
COPY tsconfig.json ./
COPY src ./src
USER node
CMD ["npx", "tsx", "src/worker.ts"]
